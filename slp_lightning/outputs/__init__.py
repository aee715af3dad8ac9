"""What a run writes and reports: its files (``files``: PNGs, sheets, ``results.json``), a sweep's
summaries (``summaries``), an audit's report (``privacy_utility``), and the semantic score by an
independent classifier (``semantic``, ``evaluators``)."""
