"""Quantization-aware training for the 'qat-int8' mode: fake-quant fine-tuning before an int8 export.

The exporters call these: `keras_qat` (TFMOT on a tf_keras twin, for TFLiteConverter) and `torch_qat`
(PT2E `prepare_qat_pt2e` with the target's quantizer). Frameworks are imported only when QAT runs.
"""
