# Install rules and the CMake package (find_package(attnc CONFIG)).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(ATTNC_VERSION 0.1.0)
set(ATTNC_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/attnc)

# Run paths of the installed binaries: the link directories outside the build tree (LLVM's).
set(CMAKE_INSTALL_RPATH_USE_LINK_PATH ON)

install(TARGETS attnc attnc-opt RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
set(ATTNC_HEADERS)
if(TARGET attnc_runtime_shared)
  install(TARGETS attnc_runtime_shared LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  list(APPEND ATTNC_HEADERS ${PROJECT_SOURCE_DIR}/runtime/attnc_runtime.h)
endif()
if(TARGET attnc_jit_shared)
  install(TARGETS attnc_jit_shared LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  list(APPEND ATTNC_HEADERS ${PROJECT_SOURCE_DIR}/compiler/capi/attnc.h
       ${PROJECT_SOURCE_DIR}/compiler/capi/attnc.hpp)
endif()
install(FILES ${ATTNC_HEADERS} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/attnc)

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/attncConfig.cmake.in
  ${PROJECT_BINARY_DIR}/attncConfig.cmake INSTALL_DESTINATION ${ATTNC_INSTALL_CMAKEDIR}
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR CMAKE_INSTALL_LIBDIR CMAKE_INSTALL_BINDIR)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/attncConfigVersion.cmake
  VERSION ${ATTNC_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/attncConfig.cmake ${PROJECT_BINARY_DIR}/attncConfigVersion.cmake
        DESTINATION ${ATTNC_INSTALL_CMAKEDIR})
