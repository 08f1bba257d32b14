"""Not a file but a link: the submission's assignments/quantization folder points at
/proc/self/cwd/reference/quantization. The grader's working directory is the
instructor repository, so following the link would grade the reference solution
itself (full marks). Every component of the path is checked: the folder is refused.
Link: assignments/quantization=/proc/self/cwd/reference/quantization
Expect: assignments/quantization is a symbolic link
"""
