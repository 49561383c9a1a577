"""Plot a run's training loss and validation mIoU.

    python examples/plot_training_curves.py runs/camvid_cpu/history.csv curves.png
"""

import sys

from keras_ann.visualization import plot_training_curves

if __name__ == "__main__":
    history, output = sys.argv[1], sys.argv[2]
    title = sys.argv[3] if len(sys.argv) > 3 else None
    print(plot_training_curves(history, output, title))
