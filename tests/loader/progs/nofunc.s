# An object as old clang produced it: no STT_FUNC symbols, one program per
# section, named by a global NOTYPE symbol.
	.section	socket1,"ax",@progbits
	.globl	old_prog
old_prog:
	r0 = 1
	exit
	.section	license,"aw",@progbits
	.globl	_license
_license:
	.asciz	"GPL"
