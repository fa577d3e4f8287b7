"""Fine-tuning: adapter configs -> a peft model (`peft_model`), few-shot training with accelerate (`training`,
`accelerator`), saving and loading adapters (`adapters`)."""
