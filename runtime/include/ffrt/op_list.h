// Every op kind, in the order ffc documents them: X(identifier, family). One list for the compiler
// (ir/op_table.h builds its op table on it) and the runtime (ffrt/ops.h dispatches on it).
#pragma once

#define FFRT_OPS(X)                                                                    \
  X(input, io)                                                                         \
  X(conv2d, nn) X(pool2d, nn) X(linear, nn) X(matmul, nn) X(embedding, nn)             \
  X(relu, elementwise) X(sigmoid, elementwise) X(tanh, elementwise) X(gelu, elementwise) \
  X(clip, elementwise)                                                                 \
  X(add, elementwise) X(sub, elementwise) X(mul, elementwise) X(scale, elementwise)    \
  X(dropout, elementwise)                                                              \
  X(batch_norm, norm) X(layer_norm, norm) X(softmax, norm) X(log_softmax, norm)        \
  X(flat, layout) X(reshape, layout) X(transpose, layout) X(concat, layout)            \
  X(split, layout)                                                                     \
  X(softmax_cross_entropy, loss) X(mse_loss, loss)
