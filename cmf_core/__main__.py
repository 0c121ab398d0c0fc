from cmf_core.script import main

main()
