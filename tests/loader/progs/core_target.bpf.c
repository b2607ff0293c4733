// The "target kernel" for core.bpf.c: same type names, different layouts.
// Only its BTF is used.
struct point {
  long long pad;
  int y;
  unsigned char extra;
  unsigned int mode : 5;
  unsigned int flags : 3;
  int x;
  int big;
  short tail;
  unsigned int ubig;
  int more;
};
enum color { BLUE = 40, RED = 10, GREEN = 20 };
struct point p_anchor;
enum color c_anchor;
