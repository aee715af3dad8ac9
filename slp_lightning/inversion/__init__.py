"""The inversion as a plain ``nn.Module`` (``torch_model``) and what it is made of besides the maths:
the threat model of an attack (``threat``), the task's utility under a defence (``utility``), a
feature visualisation's rows (``visualisation``), the contrast search at a switch (``contrast``)
and N_f (``n_f``)."""
