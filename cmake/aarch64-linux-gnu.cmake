# cmake/aarch64-linux-gnu.cmake — cross build for 64-bit Arm boards
# (Raspberry Pi 4/5, Coral Dev Board) with Debian's gcc-aarch64-linux-gnu,
# arm64 libraries from multiarch (scripts/setup --arm64) and the
# linux_arm64 TFLite C library in .deps/tflite-arm64.
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
# Tests run under qemu-aarch64 (make check-arm64): binfmt_misc may be absent,
# so ctest runs each test program through the emulator explicitly.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

# Headers and libraries from the arm64 multiarch folders only; programs
# (pkg-config, the host's tools) from the build machine.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")

get_filename_component(_emx_root ${CMAKE_CURRENT_LIST_DIR}/.. ABSOLUTE)
set(TFLITE_DIR "${_emx_root}/.deps/tflite-arm64" CACHE PATH "arm64 TFLite C API")

# The arm64 loader is multiarch libc6:arm64's /lib/ld-linux-aarch64.so.1
# (scripts/setup --arm64 installs it with the arm64 -dev libraries), which
# finds /lib/aarch64-linux-gnu by itself: no -L. Not -L /usr/aarch64-linux-gnu:
# that loader (libc6-arm64-cross) is another glibc build than the multiarch
# libc.so.6 the programs link, and the pair spins forever in pthread_create.
# Programs the tests start (edgemuxd, edgemux-devhost) go through the same
# emulator: make check-arm64 sets EMX_EXEC_WRAPPER.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64)
# What the tests use for ldd (tests/abi_check.sh): the arm64 loader's own
# listing, under the emulator.
set(EMX_CROSS_LDD "qemu-aarch64 /lib/ld-linux-aarch64.so.1 --list")
