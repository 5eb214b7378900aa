"""Print the supervisor's states and transition table as Markdown (for docs/runtime.md):

python -m quecmqtt.runtime.docs
"""

from quecmqtt.runtime.supervisor import render_table

if __name__ == "__main__":
    print(render_table(), end="")
