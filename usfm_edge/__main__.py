from usfm_edge.cli import main

main()
