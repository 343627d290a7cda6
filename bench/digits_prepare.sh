# Sourced by the digits benchmarks: writes scikit-learn's handwritten digits
# into bench/.cache/digits (CIFAR-10 binary under cifar/, the test images as
# PNG under png/test/) and sets `cache` and `data`. The digits file comes
# from the scikit-learn wheel (downloaded once with pip) unless `csv` names it.
cache=bench/.cache
mkdir -p "$cache"
csv=${csv:-$cache/sklearn/datasets/data/digits.csv.gz}
if [ ! -f "$csv" ]; then
    python3 -m pip download -q --no-deps --only-binary=:all: scikit-learn -d "$cache"
    unzip -o -q "$cache"/scikit_learn-*.whl 'sklearn/datasets/data/digits.csv.gz' -d "$cache"
fi
data=$cache/digits
python3 bench/digits_data.py "$csv" "$data"
