"""The one-machine stack: moto server, Lambda bridge, and the Lambda Runtime API emulator
(``runtime_api``: run a function's bootstrap with its layers, ``sandbox``: where it runs)."""
