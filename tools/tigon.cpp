// The tigon command-line tool (filled in by the front-end work).
#include <cstdio>
int main() { std::puts("tigon"); return 0; }
