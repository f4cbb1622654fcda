// The op table entries, one accessor per kind, defined in the family files of this folder.
#pragma once

#include "ir/op_table.h"

namespace ffc::ops {

#define FFC_OP_DECL(id, family) const OpInfo& family##_##id();
FFC_OPS(FFC_OP_DECL)
#undef FFC_OP_DECL

}  // namespace ffc::ops
