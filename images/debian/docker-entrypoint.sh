#!/bin/sh
# The bash image's entrypoint, as that image behaves: with no arguments, or
# a first one that is an option, it runs bash with them; otherwise it runs
# them as a command (a step with args and no command: `echo hi`).
if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
    set -- bash "$@"
fi
exec "$@"
