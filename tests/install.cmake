# The installed libraries, as a program outside the tree sees them
# (tests/install/).  Included by tests/CMakeLists.txt.
set(FLEXPAGE_INSTALL_TESTS ${CMAKE_CURRENT_SOURCE_DIR}/install)

# cmake --install into a temporary prefix, then consumers built against
# those files alone with pkg-config, run over real regions.
if(FLEXPAGE_SANITIZE)
  set(FLEXPAGE_CONSUMER_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=undefined)
endif()
add_test(NAME test_install
  COMMAND bash ${FLEXPAGE_INSTALL_TESTS}/run.sh ${CMAKE_BINARY_DIR} $<TARGET_FILE:flexpage>
          ${CMAKE_C_COMPILER} ${PROJECT_VERSION} ${FLEXPAGE_SOVERSION} ${CMAKE_INSTALL_LIBDIR}
          ${FLEXPAGE_CONSUMER_FLAGS})
set_tests_properties(test_install PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77)

# Each shared library exports exactly what its public headers declare.
function(flexpage_exports_test lib node)
  set(own $<TARGET_PROPERTY:${lib},FLEXPAGE_HEADER_DIRS>)
  add_test(NAME test_exports_${node}
    COMMAND bash ${FLEXPAGE_INSTALL_TESTS}/exports.sh ${CMAKE_C_COMPILER} $<TARGET_FILE:${lib}>
            ${node} "$<JOIN:${own},:>" ${ARGN})
endfunction()
flexpage_exports_test(flexpage_pager_shared FLEXPAGE)
flexpage_exports_test(flexpage_kernels_shared FLEXKERN)
flexpage_exports_test(flexpage_runtime_shared FLEXRT ${CMAKE_SOURCE_DIR}/kernels/include)
