# cmake/install.cmake — what `cmake --install` (and `make install`) puts
# where. Included last from CMakeLists.txt, so every target exists here.
#
#   <prefix>/lib[/<triplet>]/libedgemux.so.0          engine (links TFLite)
#   <prefix>/lib[/<triplet>]/libedgemux-client.so.0   client API (no TFLite)
#   <prefix>/lib[/<triplet>]/edgemux/libtensorflowlite_c.so
#                              private: found through RUNPATH ($ORIGIN-
#                              relative), never on the loader's path
#   <prefix>/include/edgemux/*.h, <libdir>/pkgconfig/edgemux{,-client}.pc
#   <prefix>/sbin/edgemuxd, <prefix>/bin/edgemux,
#   <prefix>/libexec/edgemux/edgemux-devhost
#   <prefix>/share/man/man1/edgemux.1, man8/edgemuxd.8
#   <EMX_INSTALL_PYTHONDIR>/edgemux/*.py
include(GNUInstallDirs)

set(EMX_PRIVATE_LIBDIR ${CMAKE_INSTALL_LIBDIR}/edgemux)
set(EMX_INSTALL_LIBEXECDIR ${CMAKE_INSTALL_LIBEXECDIR}/edgemux)

# Debian's python3 reads /usr/lib/python3/dist-packages; any other prefix
# gets the versioned site-packages folder, to be put on PYTHONPATH.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(emx_pydefault lib/python3/dist-packages)
else()
  find_package(Python3 COMPONENTS Interpreter QUIET)
  if(Python3_FOUND)
    set(emx_pydefault
        lib/python${Python3_VERSION_MAJOR}.${Python3_VERSION_MINOR}/site-packages)
  else()
    set(emx_pydefault lib/python3/site-packages)
  endif()
endif()
set(EMX_INSTALL_PYTHONDIR ${emx_pydefault} CACHE STRING
    "Where the Python package goes (relative to the prefix, or absolute)")

# The engine runs edgemux-devhost from a folder that is neither beside the
# library nor on PATH once installed: tell child.c where it will be
# (emx__devhost_find; $EMX_DEVHOST still comes first). A source property,
# so it reaches every target that compiles child.c.
set_property(SOURCE ${CMAKE_SOURCE_DIR}/src/backend/child.c APPEND PROPERTY
  COMPILE_DEFINITIONS
  EMX_DEVHOST_INSTALLED_DIR="${CMAKE_INSTALL_FULL_LIBEXECDIR}/edgemux")

# RUNPATHs relative to $ORIGIN, so a DESTDIR or relocated tree finds its own
# private TFLite (and libedgemux when it is not in a system folder). The
# build tree keeps the absolute .deps paths set in CMakeLists.txt.
function(emx_install_runpath target dir)
  file(RELATIVE_PATH to_private ${CMAKE_INSTALL_PREFIX}/${dir}
       ${CMAKE_INSTALL_PREFIX}/${EMX_PRIVATE_LIBDIR})
  file(RELATIVE_PATH to_libdir ${CMAKE_INSTALL_PREFIX}/${dir}
       ${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR})
  set(rp "$ORIGIN/${to_private}")
  if(NOT to_libdir STREQUAL "")
    list(APPEND rp "$ORIGIN/${to_libdir}")
  endif()
  set_target_properties(${target} PROPERTIES INSTALL_RPATH "${rp}")
endfunction()

# ---- libraries and headers ---------------------------------------------------
emx_install_runpath(edgemux ${CMAKE_INSTALL_LIBDIR})
install(TARGETS edgemux
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
                COMPONENT runtime NAMELINK_COMPONENT dev)
install(FILES ${TFLITE_LIBRARY} DESTINATION ${EMX_PRIVATE_LIBDIR}
        COMPONENT runtime)
install(FILES ${CMAKE_SOURCE_DIR}/include/edgemux/edgemux.h
              ${CMAKE_SOURCE_DIR}/include/edgemux/client.h
              ${EMX_GEN_INCLUDE}/edgemux/version.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/edgemux COMPONENT dev)

# pkg-config: an absolute libdir/includedir when GNUInstallDirs gives one.
set(EMX_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
set(EMX_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
if(IS_ABSOLUTE ${CMAKE_INSTALL_LIBDIR})
  set(EMX_PC_LIBDIR ${CMAKE_INSTALL_LIBDIR})
endif()
if(IS_ABSOLUTE ${CMAKE_INSTALL_INCLUDEDIR})
  set(EMX_PC_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR})
endif()
configure_file(${CMAKE_SOURCE_DIR}/cmake/edgemux.pc.in
               ${CMAKE_BINARY_DIR}/edgemux.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/edgemux.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)

if(TARGET edgemux-client)
  emx_install_runpath(edgemux-client ${CMAKE_INSTALL_LIBDIR})
  install(TARGETS edgemux-client
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
                  COMPONENT client NAMELINK_COMPONENT dev)
  configure_file(${CMAKE_SOURCE_DIR}/cmake/edgemux-client.pc.in
                 ${CMAKE_BINARY_DIR}/edgemux-client.pc @ONLY)
  install(FILES ${CMAKE_BINARY_DIR}/edgemux-client.pc
          DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)
endif()

# ---- programs ----------------------------------------------------------------
emx_install_runpath(edgemuxd ${CMAKE_INSTALL_SBINDIR})
emx_install_runpath(edgemux-cli ${CMAKE_INSTALL_BINDIR})
emx_install_runpath(edgemux-devhost ${EMX_INSTALL_LIBEXECDIR})
install(TARGETS edgemuxd DESTINATION ${CMAKE_INSTALL_SBINDIR} COMPONENT daemon)
install(TARGETS edgemux-cli DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT daemon)
install(TARGETS edgemux-devhost DESTINATION ${EMX_INSTALL_LIBEXECDIR}
        COMPONENT daemon)
install(FILES ${CMAKE_SOURCE_DIR}/docs/man/edgemux.1
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT daemon)
install(FILES ${CMAKE_SOURCE_DIR}/docs/man/edgemuxd.8
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man8 COMPONENT daemon)

# ---- the service (packaging/) ------------------------------------------------
# Folders systemd and udev read; Debian bookworm keeps them under /lib
# (debian/rules passes /lib/...). Relative values are under the prefix.
set(EMX_SYSTEMDUNITDIR lib/systemd/system CACHE STRING "systemd units")
set(EMX_UDEVRULESDIR lib/udev/rules.d CACHE STRING "udev rules")
set(EMX_SYSUSERSDIR lib/sysusers.d CACHE STRING "sysusers.d entries")
set(EMX_TMPFILESDIR lib/tmpfiles.d CACHE STRING "tmpfiles.d entries")
configure_file(${CMAKE_SOURCE_DIR}/packaging/systemd/edgemuxd.service.in
               ${CMAKE_BINARY_DIR}/packaging/edgemuxd.service @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/packaging/edgemuxd.service
              ${CMAKE_SOURCE_DIR}/packaging/systemd/edgemuxd.socket
        DESTINATION ${EMX_SYSTEMDUNITDIR} COMPONENT daemon)
install(FILES ${CMAKE_SOURCE_DIR}/packaging/udev/60-edgemux-coral.rules
        DESTINATION ${EMX_UDEVRULESDIR} COMPONENT daemon)
install(FILES ${CMAKE_SOURCE_DIR}/packaging/sysusers/edgemux.conf
        DESTINATION ${EMX_SYSUSERSDIR} COMPONENT daemon)
install(FILES ${CMAKE_SOURCE_DIR}/packaging/tmpfiles/edgemux.conf
        DESTINATION ${EMX_TMPFILESDIR} COMPONENT daemon)
install(FILES ${CMAKE_SOURCE_DIR}/packaging/config/edgemuxd.json
        DESTINATION ${CMAKE_INSTALL_SYSCONFDIR}/edgemux COMPONENT daemon)

# ---- Python ------------------------------------------------------------------
install(DIRECTORY ${CMAKE_SOURCE_DIR}/python/edgemux
        DESTINATION ${EMX_INSTALL_PYTHONDIR} COMPONENT python
        FILES_MATCHING PATTERN "*.py" PATTERN "__pycache__" EXCLUDE)

# ---- tests of the installed tree --------------------------------------------
if(EMX_TESTS)
  add_subdirectory(${CMAKE_SOURCE_DIR}/tests/packages
                   ${CMAKE_BINARY_DIR}/tests/packages)
endif()
