from tradestore.cli import main

main()
