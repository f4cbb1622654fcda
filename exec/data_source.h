// Feeding a model's inputs from a data set (inputs.npy/labels.npy or IDX files).
#pragma once

#include <memory>
#include <string>

#include "exec/serial.h"
#include "ffrt/dataset.h"
#include "ir/graph.h"

namespace ffc {

/// The model's data input and label input (op indices): the label input is the input op the loss
/// reads as its target; the data input is the one other input op. A UserError when the model has
/// several data inputs (a data set feeds one).
struct DataInputs {
  int data = -1;
  int labels = -1;
};
DataInputs find_data_inputs(const Graph& g);

/// Checks that a data set's sample shapes and types fit the model's inputs (a UserError naming the
/// data set and the input otherwise) and returns the source that feeds them: iteration k takes the
/// samples k*B .. k*B+B-1 of the data set, wrapping at its end.
InputSource dataset_source(const Graph& g, std::shared_ptr<ffrt::Dataset> data, int64_t batch,
                           const std::string& where);

}  // namespace ffc
