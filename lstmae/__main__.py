from lstmae.cli import main

main()
