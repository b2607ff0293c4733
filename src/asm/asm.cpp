#include "asm/asm.hpp"
// Placeholder: implemented by the asm work item.
