from reporter.start import main

main()
