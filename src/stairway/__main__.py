from stairway.cli import main

main()
