import sys

from quecmqtt.cli import main

sys.exit(main())
