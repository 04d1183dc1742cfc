"""The nine RPM training methods of Appendix E.1-E.2, each a LoRA adapter trained with TRL."""
