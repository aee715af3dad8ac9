"""The Lightning layer: ``FeatureInversion``, the LightningModule whose only parameter is ``I_pre``
(``lightning_model``), independent images on many devices (``distributed``) and what a checkpoint
must match to be resumed (``resume``); its callbacks are ``slp_lightning.callbacks``."""
