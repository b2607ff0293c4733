#include "interp/interp.hpp"
// Placeholder: implemented by the interpreter work item.
