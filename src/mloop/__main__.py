from mloop.quick import main

main()
