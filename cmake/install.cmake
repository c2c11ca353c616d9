# `cmake --install`: the public headers, libkeel (and libkeel_nats when built), the keel command-line tool (when built), a CMake
# package (find_package(keel) -> keel::keel) and a pkg-config file (keel.pc). Both are relocatable:
# they find the prefix from where they are installed, so `cmake --install build --prefix DIR` works.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# replication_nats.h only with the library that implements it (keel::keel_nats).
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/keel DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.h" PATTERN "replication_nats.h" EXCLUDE)
set(KEEL_INSTALL_TARGETS keel)
if(TARGET keel_nats)
  install(FILES ${PROJECT_SOURCE_DIR}/include/keel/replication_nats.h
          DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/keel)
  list(APPEND KEEL_INSTALL_TARGETS keel_nats)
endif()
install(TARGETS ${KEEL_INSTALL_TARGETS} EXPORT keelTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
if(TARGET keel-cli)
  install(TARGETS keel-cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()

set(KEEL_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/keel)
install(EXPORT keelTargets NAMESPACE keel:: DESTINATION ${KEEL_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/keelConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/keelConfig.cmake
                              INSTALL_DESTINATION ${KEEL_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/keelConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/keelConfig.cmake ${PROJECT_BINARY_DIR}/keelConfigVersion.cmake
        DESTINATION ${KEEL_CMAKE_DIR})

# keel.pc: a static libkeel needs its dependencies' libraries on the user's link line, so they are
# Requires; a shared one links them itself (Requires.private).
set(KEEL_PC_DEPENDENCIES
    "absl_strings absl_str_format absl_flat_hash_map absl_node_hash_map absl_hash")
if(LIBURING_FOUND)
  string(APPEND KEEL_PC_DEPENDENCIES " liburing")
endif()
if(KEEL_SHARED)
  set(KEEL_PC_REQUIRES "Requires.private")
else()
  set(KEEL_PC_REQUIRES "Requires")
endif()
file(RELATIVE_PATH KEEL_PC_TO_PREFIX /${CMAKE_INSTALL_LIBDIR}/pkgconfig /)
string(REGEX REPLACE "/$" "" KEEL_PC_TO_PREFIX "${KEEL_PC_TO_PREFIX}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/keel.pc.in ${PROJECT_BINARY_DIR}/keel.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/keel.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
