from vla_il.cli import main

raise SystemExit(main())
