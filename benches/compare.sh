#!/usr/bin/env bash
# Two builds of clipsearch side by side in one run, on the same machine, index, model and
# photos, alternating so that load and cache state fall on both alike: `clipsearch search`
# from process start to results (new texts, so the text tower loads and runs; and a repeated
# text, which the query cache answers) and `clipsearch index` of a photo folder into a fresh
# index. Prints the CPU and the medians; divide the two columns for the ratio.
#
#   cargo bench -p clipsearch-cli --bench scale     # with SCALE_N=100000 SCALE_DIR=DIR: an
#                                                   # index of 100k x 512 and a ViT-B/32 model
#   bash ../shared/tools/fetch-photos.sh PHOTOS
#   bash benches/compare.sh OLD_BINARY NEW_BINARY DIR PHOTOS [ROUNDS]
#
# INDEX=PATH searches another index than DIR/index-100000 (e.g. DIR/index-1000000); PHOTOS `-`
# leaves out the index runs.
set -euo pipefail
old=$1 new=$2 dir=$3 photos=$4 rounds=${5:-12}
index=${INDEX:-$dir/index-100000} model=$dir/vit-b32
grep -m1 "model name" /proc/cpuinfo
secs() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
declare -A fresh repeated indexed
for i in $(seq "$rounds"); do
  for b in old new; do
    exe=${!b}
    fresh[$b]+="$(secs "$exe" search "a photo of thing $b $i $RANDOM" -n 10 --index "$index") "
    repeated[$b]+="$(secs "$exe" search "a repeated query" -n 10 --index "$index") "
  done
done
for i in 1 2 3; do
  [ "$photos" = - ] && break
  for b in old new; do
    exe=${!b} scratch=$(mktemp -d)
    indexed[$b]+="$(secs "$exe" index "$photos" --index "$scratch" --model "$model") "
    rm -rf "$scratch"
  done
done
for b in old new; do
  echo "$b: new text $(median <<<"${fresh[$b]}") s, repeated text $(median <<<"${repeated[$b]}") s, index $(median <<<"${indexed[$b]:-}") s (medians; $rounds, $rounds, 3 runs)"
done
