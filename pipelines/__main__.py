from pipelines.cli.main.main import main

main()
