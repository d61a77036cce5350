#!/bin/sh
# Push the central gallery to devices with rsync (over ssh for host:path destinations).
#
#   deploy/fleet/push-gallery.sh /srv/edgeface/gallery pi@door:/var/lib/edgeface/gallery pi@garden:/var/lib/edgeface/gallery
#
# -a --delete        the device folder becomes an exact copy (people removed centrally go away)
# --delay-updates    changed files are written into .~tmp~ and renamed into place at the end, so
#                    the daemon's watcher (which ignores dotted names) sees one quick swap, not a
#                    half-copied person; the watcher also waits gallery.settle_seconds per file
# --chmod            photos readable by the edgeface group only, whatever the central umask
# --exclude '.*'     editor and OS litter (.DS_Store, .~lock files) stays central
set -eu
if [ $# -lt 2 ]; then
    echo "usage: $0 CENTRAL_DIR DESTINATION..." >&2
    exit 2
fi
central=${1%/}
shift
status=0
for destination in "$@"; do
    if rsync -a --delete --delay-updates --chmod=D750,F640 --exclude='.*' \
        "$central/" "${destination%/}/"; then
        echo "pushed to $destination"
    else
        echo "FAILED: $destination (rsync exit $?)" >&2
        status=1
    fi
done
exit $status
