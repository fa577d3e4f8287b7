"""Language models on the label side: loading a frozen causal LM and writing label descriptions with it
(`causal_lm`), the language-model label prompter (`prompter.XClipLLMPrompter`)."""
