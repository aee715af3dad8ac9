from slp_lightning.cli import command

command()
