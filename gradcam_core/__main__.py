import sys

from gradcam_core.cli import main

sys.exit(main())
