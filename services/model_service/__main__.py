import sys

from services.model_service.server import main

sys.exit(main())
