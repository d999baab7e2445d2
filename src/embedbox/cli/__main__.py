from embedbox.cli import main

main()
