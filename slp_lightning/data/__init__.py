"""What a run reads: images (``images``), features files (``features``), the names of a target's files
(``file_names``), and the targets of a run as a LightningDataModule (``targets``)."""
