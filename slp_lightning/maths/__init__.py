"""The maths of the method, plain PyTorch: the range constraint and the Laplacian pyramid
(``pyramid``), the loss terms (``losses``), the metrics (``metrics``), the switching schedule and
each image's learning rate (``schedule``), the guards against non-finite numbers (``guards``) and
transformation robustness (``transforms``)."""
