#!/usr/bin/env bash
# Downloads the Python, JavaScript and TypeScript packages that eval_modes
# (turboprop-cli/examples/eval_modes) searches besides Rust crates, pinned, and unpacks them
# (idempotent: a package already unpacked is left alone).
#
#   scripts/fetch-eval-corpora.sh [CACHE]      # default $TURBOPROP_EVAL_CACHE, else ~/.cache/turboprop-eval
#
# Layout: CACHE/downloads/ holds the sdists and tarballs, CACHE/src/NAME-VERSION/ each one
# unpacked, and CACHE/corpora/NAME-VERSION a symlink to the folder of its sources, which is
# what eval_modes takes (as that path, or as NAME when it finds it under CACHE/corpora).
# Prints the corpora folders, tuning ones first.
#
# Only source that is really there is used: Python sdists (pip download --no-binary :all:)
# and npm tarballs that ship readable source with /** */ docs, not only bundles.
set -euo pipefail

cache="${1:-${TURBOPROP_EVAL_CACHE:-$HOME/.cache/turboprop-eval}}"

# kind name version source-folder-inside-the-package role
corpora=(
    # Python: docstrings on nearly every function and method.
    "pypi click 8.5.1 src/click tuning"
    "pypi requests 2.34.2 src/requests held-out"
    # JavaScript: lodash-es is one ES module per function, each with a JSDoc block;
    # commander is classes whose methods carry JSDoc.
    "npm lodash-es 4.18.1 . tuning"
    "npm commander 15.1.0 lib held-out"
    # TypeScript: both ship their .ts sources (src/) beside the compiled output.
    "npm rxjs 7.8.2 src tuning"
    "npm @tanstack/query-core 5.108.4 src held-out"
)

mkdir -p "$cache/downloads" "$cache/src" "$cache/corpora"
for line in "${corpora[@]}"; do
    read -r kind name version sub role <<<"$line"
    # @scope/name is unpacked as scope-name.
    flat="${name#@}"
    flat="${flat//\//-}"
    dest="$cache/src/$flat-$version"
    if [[ ! -f "$dest/.unpacked" ]]; then
        rm -rf "$dest"
        mkdir -p "$dest"
        case "$kind" in
        pypi)
            python3 -m pip download --quiet --no-deps --no-binary :all: \
                -d "$cache/downloads" "$name==$version" >&2
            tar -xzf "$cache/downloads/$name-$version.tar.gz" -C "$dest" --strip-components=1
            ;;
        npm)
            archive=$(cd "$cache/downloads" && npm pack --silent "$name@$version" | tail -n 1)
            tar -xzf "$cache/downloads/$archive" -C "$dest" --strip-components=1
            ;;
        *)
            echo "unknown kind $kind" >&2
            exit 2
            ;;
        esac
        touch "$dest/.unpacked"
    fi
    if [[ ! -d "$dest/$sub" ]]; then
        echo "$name $version has no folder $sub" >&2
        exit 1
    fi
    ln -sfn "$(cd "$dest/$sub" && pwd)" "$cache/corpora/$flat-$version"
    echo "$role $cache/corpora/$flat-$version"
done
