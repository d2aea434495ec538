# bench/sweep's storage bound: a cold O_DIRECT read of every chunk payload
# of an image (see bench/README.md, "## bench/sweep").  The script uses
# this build when it is up to date and compiles sweep_read.c itself
# otherwise.
# With liburing (a bench-only dependency: the pager reads with pread),
# sweep_read also reads through io_uring and compares the two ways.
add_executable(sweep_read ${CMAKE_CURRENT_LIST_DIR}/sweep_read.c)
target_link_libraries(sweep_read PRIVATE Threads::Threads)
pkg_check_modules(URING IMPORTED_TARGET liburing)
if(URING_FOUND)
  target_compile_definitions(sweep_read PRIVATE SWEEP_READ_URING)
  target_link_libraries(sweep_read PRIVATE PkgConfig::URING)
endif()

# bench/sweep --auto-pack: an image's tensors stored again with the
# writer's speed-adaptive codec at a read rate measured in the sweep.
add_executable(sweep_recode ${CMAKE_CURRENT_LIST_DIR}/sweep_recode.c)
target_link_libraries(sweep_recode PRIVATE flexpage_pager)
