# Sourced by the scripts after setup.sh: puts the pip-installed cmake first on PATH (pip may
# have put its launcher somewhere PATH does not reach).
CMAKE_BIN=$(python3 -c 'import cmake; print(cmake.CMAKE_BIN_DIR)' 2>/dev/null || true)
if [ -n "$CMAKE_BIN" ] && [ -x "$CMAKE_BIN/cmake" ]; then
  export PATH="$CMAKE_BIN:$PATH"
fi
