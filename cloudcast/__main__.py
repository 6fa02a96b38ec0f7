from cloudcast.cli.main import main

raise SystemExit(main())
