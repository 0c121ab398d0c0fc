from cmf_core.cli import main

main()
