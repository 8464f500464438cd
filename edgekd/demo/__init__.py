"""The Gradio demo (`edgekd demo BUNDLE`, or `python demo/app.py --bundle BUNDLE`); needs `edgekd[demo]`."""
