from slp_lightning.cli import main

main()
