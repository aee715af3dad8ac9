from slp_lightning.cli.commands import command

command()
