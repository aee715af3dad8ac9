"""What ``fit`` runs: the Trainers (``trainers``), one run, a sweep or chunks (``runner``, ``sweep``,
``chunks``, ``pieces``, ``chunk_sizes``), work dealt to devices (``dealing``), run folders
(``run_folders``), the checks before a run (``preflight``) and the lines printed at its end
(``reports``)."""
