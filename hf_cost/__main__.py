from hf_cost.cli import main

raise SystemExit(main())
