// Segmentation and classification scores from a confusion matrix, as the VOC benchmark (and
// mmsegmentation) compute them: IoU_k = TP / (TP + FP + FN) per class over the whole split,
// pixels labelled `ignoreIndex` left out; the mean over the classes that occur in the labels or
// the predictions (a class with an empty union has no IoU and is skipped, like nanmean).

/** counts[t * K + p]: pixels (or images) of true class t predicted as p. */
export class ConfusionMatrix {
  readonly counts: Float64Array;

  constructor(
    readonly numClasses: number,
    readonly ignoreIndex = 255,
  ) {
    this.counts = new Float64Array(numClasses * numClasses);
  }

  /** Adds label/prediction pairs; a label outside [0, K) that is not ignored is an error. */
  add(labels: ArrayLike<number>, predictions: ArrayLike<number>): void {
    if (labels.length !== predictions.length)
      throw new Error(`ConfusionMatrix.add: ${labels.length} labels but ${predictions.length} predictions`);
    const K = this.numClasses;
    for (let i = 0; i < labels.length; i++) {
      const t = labels[i];
      if (t === this.ignoreIndex) continue;
      const p = predictions[i];
      if (!(t >= 0 && t < K))
        throw new Error(
          `ConfusionMatrix.add: label ${t} at ${i} is outside 0..${K - 1} and not the ignore index ${this.ignoreIndex}`,
        );
      if (!(p >= 0 && p < K)) throw new Error(`ConfusionMatrix.add: prediction ${p} at ${i} is outside 0..${K - 1}`);
      this.counts[t * K + p]++;
    }
  }

  /** IoU per class; null where the class is in neither the labels nor the predictions. */
  iou(): (number | null)[] {
    const K = this.numClasses;
    return Array.from({ length: K }, (_, k) => {
      let row = 0;
      let col = 0;
      for (let j = 0; j < K; j++) {
        row += this.counts[k * K + j];
        col += this.counts[j * K + k];
      }
      const tp = this.counts[k * K + k];
      const union = row + col - tp;
      return union > 0 ? tp / union : null;
    });
  }

  meanIoU(): number {
    const present = this.iou().filter((v): v is number => v !== null);
    return present.length ? present.reduce((a, b) => a + b, 0) / present.length : NaN;
  }

  /** Fraction of counted items on the diagonal (top-1 accuracy, or pixel accuracy). */
  accuracy(): number {
    const K = this.numClasses;
    let total = 0;
    let hit = 0;
    for (let t = 0; t < K; t++) {
      for (let p = 0; p < K; p++) total += this.counts[t * K + p];
      hit += this.counts[t * K + t];
    }
    return total ? hit / total : NaN;
  }
}
