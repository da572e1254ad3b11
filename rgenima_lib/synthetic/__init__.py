"""The simulator (stand-in for ADNI in the demo): a synthetic cohort with planted, known truth.

``anatomy`` builds the MNI phantom, ``render`` draws one subject from it, ``write``
saves that subject as BIDS + FreeSurfer files, ``clinical`` makes the ADNIMERGE-style
table, ``truth`` plants the genes and ROIs that carry the stage, ``cohort`` puts it
all together, ``rois_table`` regenerates ``config/rois.tsv`` and ``plot`` the
phantom figure. The genotype simulator is ``rgenima_lib.synthetic.genotypes`` (PLINK files written with ``rgenima_lib.genetics.plink_io``).
"""
