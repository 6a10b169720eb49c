#define CVIRT_VERSION "0.1.0"
