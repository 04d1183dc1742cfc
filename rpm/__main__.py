from rpm.cli import main

main()
